//! The checkpoint records which instruction paths the kernels took (design §9.4), and a resume
//! on other paths says so. One test: it switches the composed path on for the whole process.

mod common;

use common::{options, resume, resume_config, scratch, text_data, LmTrainer};
use lsnn_train::lsnn_layers::kernel::{force_composed, matmul_path, KernelPaths};
use lsnn_train::{checkpoint, Event, TrainerState};

fn saved_paths(dir: &std::path::Path) -> KernelPaths {
    let set = checkpoint::resolve(dir).unwrap();
    let path = set.join(checkpoint::STATE_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let state = TrainerState::from_json(&text, &path).unwrap();
    state.kernel_paths.expect("kernel paths recorded")
}

fn notices(t: &mut LmTrainer) -> Vec<String> {
    let mut out = Vec::new();
    t.run(&mut |e| {
        if let Event::Notice(n) = e {
            out.push(n.clone())
        }
    })
    .unwrap();
    out
}

#[test]
fn the_checkpoint_records_the_kernel_paths_and_a_resume_on_others_says_so() {
    let dir = scratch("kernel-paths");
    // A CPU run on the composed path (as with LSNN_FORCE_COMPOSED=1).
    force_composed(true);
    let mut o = options(&dir);
    o.max_batches = Some(2);
    let mut t = LmTrainer::new(resume_config(), text_data(&dir), o).unwrap();
    let first = notices(&mut t);
    drop(t);
    let saved = saved_paths(&dir);
    assert_eq!(saved.matmul, matmul_path());
    assert!(!saved.fused, "{saved:?}");
    assert!(
        !first.iter().any(|n| n.contains("kernels differ")),
        "{first:?}"
    );

    // Resumed on the fused kernels: a notice naming both paths, and the new path saved.
    force_composed(false);
    let mut o = options(&dir);
    o.max_batches = Some(4);
    let mut t = resume(&dir, o).unwrap();
    let resumed = notices(&mut t);
    drop(t);
    let said: Vec<&String> = resumed
        .iter()
        .filter(|n| n.contains("kernels differ"))
        .collect();
    assert_eq!(said.len(), 1, "{resumed:?}");
    assert!(
        said[0].contains("fused path (saved run: composed)"),
        "{}",
        said[0]
    );
    assert!(!said[0].contains("matmul"), "{}", said[0]);
    assert_eq!(saved_paths(&dir), KernelPaths::cpu());

    // Resumed again on the same paths: nothing to say.
    let mut o = options(&dir);
    o.max_batches = Some(6);
    let mut t = resume(&dir, o).unwrap();
    let again = notices(&mut t);
    assert!(
        !again.iter().any(|n| n.contains("kernels differ")),
        "{again:?}"
    );
}
