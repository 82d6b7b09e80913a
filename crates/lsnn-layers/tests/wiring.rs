//! The wirings against ncps 1.0.1: the same arguments and seed build the same matrices
//! (polarities included) and layers as ncps (`scripts/fixtures/gen_cfc_ncps.py` wrote them), an
//! ncps wiring's JSON loads, and bad arguments or files are typed errors.

use lsnn_layers::wiring::{AutoNcpConfig, FullyConnectedConfig, NcpConfig, Wiring};
use lsnn_layers::LayerError;
use serde_json::Value;

fn records() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ncps/wirings.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn built(kind: &str, args: &Value, input_dim: usize) -> Wiring {
    let u = |k: &str| args[k].as_u64().unwrap() as usize;
    match kind {
        "auto_ncp" => AutoNcpConfig::new(u("units"), u("output_size"))
            .with_sparsity(args["sparsity_level"].as_f64().unwrap())
            .with_seed(u("seed") as u32)
            .build(input_dim)
            .unwrap(),
        "ncp" => NcpConfig {
            inter_neurons: u("inter_neurons"),
            command_neurons: u("command_neurons"),
            motor_neurons: u("motor_neurons"),
            sensory_fanout: u("sensory_fanout"),
            inter_fanout: u("inter_fanout"),
            recurrent_command_synapses: u("recurrent_command_synapses"),
            motor_fanin: u("motor_fanin"),
            seed: u("seed") as u32,
        }
        .build(input_dim)
        .unwrap(),
        "fully_connected" => {
            let mut c = FullyConnectedConfig::new(u("units")).with_seed(u("erev_init_seed") as u64);
            if let Some(o) = args.get("output_dim").and_then(Value::as_u64) {
                c = c.with_output_dim(o as usize);
            }
            if let Some(s) = args.get("self_connections").and_then(Value::as_bool) {
                c.self_connections = s;
            }
            c.build(input_dim).unwrap()
        }
        other => panic!("unknown wiring kind {other}"),
    }
}

#[test]
fn same_seed_same_wiring_as_ncps() {
    let recs = records();
    assert_eq!(recs.len(), 8);
    for r in &recs {
        let kind = r["kind"].as_str().unwrap();
        let input_dim = r["input_dim"].as_u64().unwrap() as usize;
        let ours = built(kind, &r["args"], input_dim);
        let theirs = Wiring::from_json(&r["wiring"].to_string()).unwrap();
        assert_eq!(ours.units, theirs.units, "{kind} {}", r["args"]);
        assert_eq!(
            ours.layer_list(),
            theirs.layer_list(),
            "{kind} {} layers",
            r["args"]
        );
        assert_eq!(
            ours.sensory_adjacency_matrix, theirs.sensory_adjacency_matrix,
            "{kind} {} sensory synapses",
            r["args"]
        );
        assert_eq!(
            ours.adjacency_matrix, theirs.adjacency_matrix,
            "{kind} {} synapses",
            r["args"]
        );
        assert_eq!(ours, theirs, "{kind} {}", r["args"]);
        // A wiring with synapses of both polarities: the generator's sign draws are checked too.
        let signs: Vec<i8> = ours.adjacency_matrix.iter().flatten().copied().collect();
        assert!(
            signs.contains(&-1) && signs.contains(&1),
            "{kind}: one polarity only"
        );
    }
}

#[test]
fn auto_ncp_sizes_follow_ncps_formulas() {
    // AutoNCP(64, 19): command = max(int(0.4·45), 1) = 18, inter = 27; fan-outs ⌊n·0.5⌋.
    let n = AutoNcpConfig::new(64, 19).ncp().unwrap();
    assert_eq!(
        (n.inter_neurons, n.command_neurons, n.motor_neurons),
        (27, 18, 19)
    );
    assert_eq!(
        (
            n.sensory_fanout,
            n.inter_fanout,
            n.recurrent_command_synapses,
            n.motor_fanin
        ),
        (13, 9, 18, 9)
    );
    let w = AutoNcpConfig::new(64, 19).build(64).unwrap();
    assert_eq!(
        w.layer_list().iter().map(Vec::len).collect::<Vec<_>>(),
        [27, 18, 19]
    );
    // Every sensory input reaches exactly sensory_fanout inter neurons (no neuron is reached
    // by the "forgotten neuron" pass from a sensory input that already feeds it).
    for row in &w.sensory_adjacency_matrix {
        assert!(row.iter().filter(|v| **v != 0).count() >= 13);
    }
    let s = w.mask_sparsity();
    assert!(s > 0.3 && s < 0.8, "mask sparsity {s}");
}

#[test]
fn bad_arguments_are_typed_errors() {
    let e = AutoNcpConfig::new(10, 8).build(4).unwrap_err();
    assert!(
        matches!(e, LayerError::Config { ref field, .. } if field == "outputs"),
        "{e}"
    );
    let e = AutoNcpConfig::new(16, 4)
        .with_sparsity(0.05)
        .build(4)
        .unwrap_err();
    assert!(e.to_string().contains("0.1..=1.0"), "{e}");
    let mut n = AutoNcpConfig::new(16, 4).ncp().unwrap();
    n.sensory_fanout = n.inter_neurons + 1;
    let e = n.build(3).unwrap_err();
    assert!(e.to_string().contains("sensory_fanout"), "{e}");
    let e = AutoNcpConfig::new(16, 4).build(0).unwrap_err();
    assert!(e.to_string().contains("input_dim"), "{e}");
}

#[test]
fn bad_wiring_files_are_typed_errors() {
    let ok = AutoNcpConfig::new(16, 4).build(5).unwrap();
    let json = serde_json::to_value(&ok).unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = json.clone();
        f(&mut v);
        Wiring::from_json(&v.to_string()).unwrap_err().to_string()
    };
    let e = with(&|v| v["adjacency_matrix"][0][0] = Value::from(2));
    assert!(e.contains("expected -1, 0 or 1"), "{e}");
    let e = with(&|v| {
        v["sensory_adjacency_matrix"].as_array_mut().unwrap().pop();
    });
    assert!(e.contains("expected 5 rows of 16"), "{e}");
    let e = with(&|v| v["layers"][0][0] = Value::from(3));
    assert!(
        e.contains("listed twice") || e.contains("exactly once"),
        "{e}"
    );
    let e = with(&|v| v["layers"][2] = Value::from(Vec::<u32>::new()));
    assert!(e.contains("empty"), "{e}");
    let e = with(&|v| v["colour"] = Value::from("red"));
    assert!(e.contains("unknown field"), "{e}");
    // ncps' own file (no layers) loads as one layer of every neuron.
    let mut v = json.clone();
    v.as_object_mut().unwrap().remove("layers");
    let w = Wiring::from_json(&v.to_string()).unwrap();
    assert_eq!(w.layer_list(), vec![(0..16).collect::<Vec<_>>()]);
}
