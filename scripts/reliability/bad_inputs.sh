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
