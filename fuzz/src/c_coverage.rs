//! Coverage of lws's C code for libFuzzer, from gcc.
//!
//! gcc's only edge-coverage mode is `-fsanitize-coverage=trace-pc`: a call
//! to `__sanitizer_cov_trace_pc()` at the start of every basic block.
//! libFuzzer no longer implements that callback (it wants clang's
//! inline-8bit-counters or trace-pc-guard), so we do: the callback hashes
//! its return address (the instrumented block) into a counter in the
//! `__libfuzzer_extra_counters` section, which libFuzzer reads as extra
//! coverage features after every input and clears before the next. gcc's
//! `trace-cmp` calls go to libFuzzer's own comparison hooks (value
//! profile, mutation dictionary); it has no float hooks, so those two are
//! empty here.
//!
//! x86_64 only: the return address is read by a two-instruction naked
//! trampoline, as stable Rust has no return-address intrinsic.

/// Counters, one per hashed block address (a power of two).
const COUNTERS: usize = 1 << 16;

/// libFuzzer finds this section through `__start_`/`__stop_` symbols.
#[used]
#[link_section = "__libfuzzer_extra_counters"]
static mut EXTRA_COUNTERS: [u8; COUNTERS] = [0; COUNTERS];

/// Called by every basic block of lws (gcc inserts the call).
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn __sanitizer_cov_trace_pc() {
    // The return address sits at [rsp] on entry; hand it to `hit` as its
    // first argument and tail-jump, so `hit` returns to the block. rdi is
    // caller-saved, so gcc's call site expects it clobbered.
    core::arch::naked_asm!("mov rdi, [rsp]", "jmp {hit}", hit = sym hit);
}

/// Counts one execution of the block at `pc`.
extern "C" fn hit(pc: usize) {
    // Fibonacci hashing spreads nearby block addresses over the table.
    let i = (pc.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) & (COUNTERS - 1);
    // SAFETY: i < COUNTERS; lws runs on the fuzzing thread only, and a lost
    // increment from a race would only blur a count, never touch memory
    // outside the array.
    unsafe {
        let p = std::ptr::addr_of_mut!(EXTRA_COUNTERS).cast::<u8>().add(i);
        p.write_volatile(p.read_volatile().wrapping_add(1));
    }
}

/// gcc's trace-cmp also instruments float compares; libFuzzer has no hook.
#[no_mangle]
pub extern "C" fn __sanitizer_cov_trace_cmpf(_a: f32, _b: f32) {}

/// As [`__sanitizer_cov_trace_cmpf`], for doubles.
#[no_mangle]
pub extern "C" fn __sanitizer_cov_trace_cmpd(_a: f64, _b: f64) {}
