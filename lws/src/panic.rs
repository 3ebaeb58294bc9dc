//! The panic boundary: every function lws calls runs its Rust code through
//! here, so nothing ever unwinds into C.
//!
//! Policy (as EV::Websockets does with `die` in callbacks): a panic in user
//! code is caught and logged through `log::error!`, and the connection goes
//! on. A panic in our own glue is treated the same way, with the trampoline
//! returning the value that tells lws "error" for that call.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; on panic logs it and returns `on_panic`.
pub(crate) fn guard<R>(what: &str, on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            log::error!(
                "panic in {what} (caught; nothing unwinds into C): {}",
                message(&*payload)
            );
            on_panic
        }
    }
}

fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}
