//! Stage marks (design §10.5): the models' staged training step says when each stage begins and
//! ends — the embedding or input projection, each block, each attention layer, the head with
//! the loss, forward and backward — to an observer the caller installs on its thread. lsnn-train's
//! memory probe opens a peak window per stage with them; with no observer a mark costs a
//! thread-local read. The marks come from the thread that runs the step: an observer sees a
//! step run whole on its thread (a probe), not the shards the trainer spreads over others.

use std::cell::RefCell;
use std::rc::Rc;

/// Which pass a stage mark is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pass {
    /// The forward pass.
    Forward,
    /// The backward pass (a stage's graph back-propagated; for a layer recomputed in backward,
    /// the recomputation too).
    Backward,
}

/// Told where a training step's stages begin and end. An observer must not run a marked model
/// step itself from `begin` or `end` (its `RefCell` is borrowed then: that would panic).
pub trait StageObserver {
    /// Stage `name` of `pass` begins.
    fn begin(&mut self, name: &str, pass: Pass);
    /// It ends (marks nest: the innermost begun ends first).
    fn end(&mut self, name: &str, pass: Pass);
}

type Shared = Rc<RefCell<dyn StageObserver>>;

thread_local! {
    static OBSERVER: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

/// Puts the previous observer back when `observe` ends, by return or by unwinding.
struct Restore(Option<Shared>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        OBSERVER.with(|o| *o.borrow_mut() = previous);
    }
}

/// Runs `f` with `observer` told of every stage mark on this thread (keep a clone of the `Rc`
/// to read it afterwards). An observer installed inside `f` replaces this one until its own
/// `observe` returns.
pub fn observe<R>(observer: Rc<RefCell<dyn StageObserver>>, f: impl FnOnce() -> R) -> R {
    let previous = OBSERVER.with(|o| o.borrow_mut().replace(observer));
    let _restore = Restore(previous);
    f()
}

fn current() -> Option<Shared> {
    OBSERVER.with(|o| o.borrow().clone())
}

/// Runs `f` as stage `name()` of `pass` (the name is built only when someone observes).
pub(crate) fn stage<R>(name: impl FnOnce() -> String, pass: Pass, f: impl FnOnce() -> R) -> R {
    let Some(observer) = current() else {
        return f();
    };
    let name = name();
    observer.borrow_mut().begin(&name, pass);
    let r = f();
    observer.borrow_mut().end(&name, pass);
    r
}
