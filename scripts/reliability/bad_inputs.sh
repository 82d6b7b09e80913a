#!/usr/bin/env bash
# Runs `lsnn` on each bad input of docs/reliability.md's table and prints, per case, the exit code
# and the first line of what it said. Usage: scripts/reliability/bad_inputs.sh [path/to/lsnn]
# (default target/release/lsnn; build it first). Works in a scratch directory it removes.
set -uo pipefail
LSNN=$(realpath "${1:-target/release/lsnn}")
ROOT=$(pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
export RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1

cat > tiny.json <<'JSON'
{"task_type": "llm", "vocab_size": 256, "input_dim": 16, "embedding_dim": 16, "hidden_dim": 16,
 "output_dim": 256, "spiking_units": 8, "liquid_units": 8, "num_layers": 2,
 "num_attention_heads": 2, "num_spike_steps": 3, "attention_spike_steps": 3,
 "sequence_length": 16, "max_position_embeddings": 24, "batch_size": 6, "num_epochs": 1,
 "backbone_units": 16, "backbone_layers": 1, "spike_threshold": 0.5, "seed": 5,
 "gradient_accumulation_steps": 1, "warmup_steps": 1, "learning_rate": 0.003}
JSON
for i in $(seq 0 119); do echo "line $i: the quick brown fox $((i * 7 % 13))"; done > data.txt
"$LSNN" train --config tiny.json --data data.txt --out run >/dev/null 2>&1 || echo "setup failed"
SET=$(cat run/CURRENT)

# edit FIELD VALUE: tiny.json with one field's value replaced.
edit() { python3 - "$1" "$2" <<'PY'
import json, sys
c = json.load(open("tiny.json")); c[sys.argv[1]] = json.loads(sys.argv[2])
json.dump(c, open("edited.json", "w"))
PY
}
case_() {
    local what=$1; shift
    local out code
    out=$("$@" 2>&1 >/dev/null); code=$?
    printf '| %s | %s | %s |\n' "$what" "$code" "$(printf '%s' "$out" | grep -v '^$' | head -1 | cut -c1-220 | sed 's/|/\\|/g')"
}
copy_run() { rm -rf "$1"; cp -r run "$1"; }

echo "| input | exit | what lsnn says |"
echo "|---|---|---|"
edit hidden_dim 1000000000000;   case_ "hidden_dim 10^12" "$LSNN" train --config edited.json --data data.txt --out r1
edit vocab_size 100000000000;    case_ "vocab_size 10^11" "$LSNN" train --config edited.json --data data.txt --out r1
edit num_spike_steps 1000000000; case_ "num_spike_steps 10^9" "$LSNN" train --config edited.json --data data.txt --out r1
edit liquid_units 9007199254740993; case_ "liquid_units 2^53+1" "$LSNN" train --config edited.json --data data.txt --out r1
edit batch_size 0;               case_ "batch_size 0" "$LSNN" train --config edited.json --data data.txt --out r1
edit learning_rate '-1';         case_ "learning_rate -1" "$LSNN" train --config edited.json --data data.txt --out r1
edit hidden_dim '"16"';          case_ "hidden_dim \"16\" (a string)" "$LSNN" train --config edited.json --data data.txt --out r1
edit num_attention_heads 3;      case_ "heads not dividing hidden_dim" "$LSNN" train --config edited.json --data data.txt --out r1
edit hiden_dim 16;               case_ "a misspelt field" "$LSNN" train --config edited.json --data data.txt --out r1
python3 -c "
import json; c = json.load(open('tiny.json'))
c.update(sequence_length=4096, max_position_embeddings=4096, batch_size=512)
json.dump(c, open('step.json', 'w'))"
for i in $(seq 0 2999); do echo "line $i of a longer text"; done > long.txt
case_ "parameters that fit, a step past --memory-budget 1GiB" "$LSNN" train --config step.json --data long.txt --out r1 --memory-budget 1GiB
printf '{"hidden_dim": %s}' "$(head -c 100000 /dev/zero | tr '\0' 9)" > big.json
case_ "a 100000-digit number" "$LSNN" train --config big.json --data data.txt --out r1
printf '\xff\xfe{' > bin.json;   case_ "a config that is not UTF-8" "$LSNN" train --config bin.json --out r1
case_ "a config file that does not exist" "$LSNN" train --config nowhere.json --out r1
case_ "--epochs 0" "$LSNN" train --config tiny.json --data data.txt --out r1 --epochs 0
case_ "--max-batches 0" "$LSNN" train --config tiny.json --data data.txt --out r1 --max-batches 0
case_ "--out on an existing run" "$LSNN" train --config tiny.json --data data.txt --out run
case_ "--resume of a finished run" "$LSNN" train --resume run
case_ "--memory-budget 12 parsecs" "$LSNN" train --config tiny.json --data data.txt --out r1 --memory-budget "12 parsecs"
: > empty.txt;                   case_ "an empty data file" "$LSNN" train --config tiny.json --data empty.txt --out r1
printf 'ab\xffcd' > bad.txt;     case_ "a data file that is not UTF-8" "$LSNN" train --config tiny.json --data bad.txt --out r1
echo short > short.txt;          case_ "a data file shorter than two windows" "$LSNN" train --config tiny.json --data short.txt --out r1
case_ "generate --max-tokens 2^64-1" "$LSNN" generate --checkpoint run --prompt "a" --max-tokens 18446744073709551615
case_ "generate, a prompt past the positions" "$LSNN" generate --checkpoint run --prompt "$(head -c 40 /dev/zero | tr '\0' a)"
case_ "generate --temperature NaN" "$LSNN" generate --checkpoint run --prompt a --temperature NaN
copy_run c1; python3 -c "
import sys; p='c1/$SET/model.safetensors'; b=bytearray(open(p,'rb').read()); b[-7]^=1; open(p,'wb').write(b)"
case_ "one bit flipped in model.safetensors (eval)" "$LSNN" eval --checkpoint c1
case_ "the same, train --resume" "$LSNN" train --resume c1
copy_run c2; rm "c2/$SET/MANIFEST.json"; python3 -c "
p='c2/$SET/model.safetensors'; b=bytearray(open(p,'rb').read()); open(p,'wb').write(b[:len(b)//2])"
case_ "a truncated model file in a set without a manifest" "$LSNN" eval --checkpoint c2
copy_run c3; echo '{' > "c3/$SET/trainer_state.json"; case_ "a broken trainer_state.json" "$LSNN" eval --checkpoint c3
copy_run c4; echo 'ckpt-nowhere' > c4/CURRENT; case_ "CURRENT naming no set" "$LSNN" eval --checkpoint c4
case_ "a checkpoint directory that does not exist" "$LSNN" eval --checkpoint nowhere
copy_run c5; sed -i 's/line 3:/line 3;/' data.txt
case_ "the data file edited in place, same length (eval)" "$LSNN" eval --checkpoint c5
case_ "the same, train --resume" "$LSNN" train --resume c5

# The sequence tasks' data files (design §8.4). npz NAME KEY=DTYPE:SHAPE:VALUES...: an .npz written
# by hand (numpy's format, no numpy needed); VALUES is a Python expression of a flat list.
npz() { python3 - "$@" <<'PY'
import io, struct, sys, zipfile
out = sys.argv[1]
codes = {"f4": "f", "f8": "d", "i8": "q", "i4": "i", "u1": "B", "b1": "?"}
with zipfile.ZipFile(out, "w") as z:
    for spec in sys.argv[2:]:
        name, rest = spec.split("=", 1)
        dtype, shape, values = rest.split(":", 2)
        shape = tuple(int(d) for d in shape.split(",") if d)
        vals = eval(values)
        order = "|" if dtype in ("u1", "b1") else "<"
        h = "{'descr': '%s%s', 'fortran_order': False, 'shape': %s, }" % (order, dtype, repr(shape))
        h += " " * (63 - (10 + len(h)) % 64) + "\n"
        body = struct.pack("<%d%s" % (len(vals), codes[dtype]), *vals)
        z.writestr(name + ".npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + body)
PY
}
X="x=f4:6,5,2:[0.1*i for i in range(60)]"
Y="y=f4:6,5,1:[0.2*i for i in range(30)]"
SMALL=(--set hidden_dim=16 --set spiking_units=8 --set liquid_units=8 --set backbone_units=16 --set num_attention_heads=2 --epochs 1 --set batch_size=2)
case_ "a text file as regression data" "$LSNN" train --task regression --data data.txt --out s1
npz nan.npz "x=f4:6,5,2:[float('nan') if i == 7 else 0.1*i for i in range(60)]" "$Y"
case_ "NaN in x at a valid position" "$LSNN" train --task regression --data nan.npz --out s1
npz flt.npz "$X" "y=f4:6:[0.0, 1.0, 2.0, 0.0, 1.0, 2.0]"
case_ "float class labels" "$LSNN" train --task classification --data flt.npz --out s1
npz len.npz "$X" "$Y" "lengths=i8:6:[5, 6, 3, 3, 3, 3]"
case_ "a length past the padded length" "$LSNN" train --task regression --data len.npz --out s1
npz mask.npz "$X" "$Y" "mask=b1:6,5:[i % 5 != 1 for i in range(30)]"
case_ "a mask that is not right padding" "$LSNN" train --task regression --data mask.npz --out s1
npz odd.npz "$X" "$Y" "y_vali=f4:1:[0.0]"
case_ "an unknown array name" "$LSNN" train --task regression --data odd.npz --out s1
npz good.npz "$X" "$Y" "dt=f4:6,5:[1.0]*30"
case_ "input_dim set, not the data's" "$LSNN" train --task regression --data good.npz --set input_dim=5 --out s1
echo '{"task_type": "classification"}' > cls.json
case_ "--task and task_type disagree" "$LSNN" train --task regression --config cls.json --out s1
case_ "task_type vision" "$LSNN" train --task vision --out s1
head -c 300 good.npz > cut.npz
case_ "a truncated .npz" "$LSNN" train --task regression --data cut.npz --out s1
"$LSNN" train --task regression --data good.npz "${SMALL[@]}" --out sr >/dev/null 2>&1 || echo "setup failed"
npz wide.npz "x=f4:2,5,3:[0.0]*30"
case_ "predict, features of another width" "$LSNN" predict --checkpoint sr --data wide.npz --out p.npz
npz nodt.npz "$X"
case_ "predict without the dt the run was trained with" "$LSNN" predict --checkpoint sr --data nodt.npz --out p.npz
case_ "predict --out the input file" "$LSNN" predict --checkpoint sr --data good.npz --out good.npz
case_ "generate with a regression run" "$LSNN" generate --checkpoint sr --prompt a
