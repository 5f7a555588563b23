//! libtorch's process-wide cuDNN switches that tch does not expose. A convolution's forward pass
//! takes TF32 and autotuning as arguments, but its backward pass (most of an evaluation) reads
//! them from libtorch's global context, whose TF32 switch is on by default: without this, a
//! float32 run would compute its gradient with TF32 products on an NVIDIA GPU, and only the
//! forward pass would be autotuned.

use std::ffi::{c_void, CStr};
use std::sync::{Once, OnceLock};

use super::vgg::Precision;
use crate::loaded::symbol;

/// `at::globalContext()`.
const GLOBAL_CONTEXT: &CStr = c"_ZN2at13globalContextEv";
/// `at::Context::setAllowTF32CuDNN(bool)`.
const SET_ALLOW_TF32: &CStr = c"_ZN2at7Context17setAllowTF32CuDNNEb";

struct Context {
    context: *mut c_void,
    set_allow_tf32: unsafe extern "C" fn(*mut c_void, bool),
}

// SAFETY: the context is libtorch's process-wide singleton, made for use from any thread.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

fn context() -> Option<&'static Context> {
    static CONTEXT: OnceLock<Option<Context>> = OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            type Global = unsafe extern "C" fn() -> *mut c_void;
            let global = symbol(GLOBAL_CONTEXT)?;
            let set = symbol(SET_ALLOW_TF32)?;
            // SAFETY: libtorch's own functions with these signatures (a member function takes
            // its object first); the context lives as long as the process.
            unsafe {
                let context = std::mem::transmute::<*mut c_void, Global>(global)();
                (!context.is_null()).then(|| Context {
                    context,
                    set_allow_tf32: std::mem::transmute::<
                        *mut c_void,
                        unsafe extern "C" fn(*mut c_void, bool),
                    >(set),
                })
            }
        })
        .as_ref()
}

/// Sets libtorch's cuDNN switches for the convolutions of an evaluation in `precision` on a
/// GPU: TF32 only for [`Precision::Tf32`], autotuning on. Cheap enough to call before every
/// evaluation, which keeps runs of different precisions in one process (the benchmarks) right.
pub(crate) fn prepare(precision: Precision) {
    tch::Cuda::cudnn_set_benchmark(true);
    set_tf32(precision == Precision::Tf32);
}

fn set_tf32(allowed: bool) {
    match context() {
        // SAFETY: see `context`.
        Some(c) => unsafe { (c.set_allow_tf32)(c.context, allowed) },
        None => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "stylize-video: this libtorch has no at::Context::setAllowTF32CuDNN; \
                     gradients may be computed with TF32 on this GPU whatever --precision says"
                )
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether libtorch lets cuDNN use TF32, as its convolutions' backward pass asks.
    fn tf32_allowed() -> Option<bool> {
        // `at::Context::allowTF32CuDNN(std::optional<at::Float32Op>) const`.
        type Allowed = unsafe extern "C" fn(*mut c_void, u64) -> bool;
        let getter = symbol(c"_ZNK2at7Context14allowTF32CuDNNESt8optionalINS_9Float32OpEE")?;
        let c = context()?;
        // SAFETY: libtorch's function; its argument, an empty std::optional<Float32Op> (an int
        // and its flag), is passed in one register.
        unsafe {
            Some(std::mem::transmute::<*mut c_void, Allowed>(getter)(
                c.context, 0,
            ))
        }
    }

    #[test]
    fn the_backward_pass_switch_follows_the_precision() {
        // libtorch's default is TF32 allowed; each precision sets it its own way, in any order.
        for (precision, tf32) in [
            (Precision::Fp32, false),
            (Precision::Tf32, true),
            (Precision::Bf16, false),
            (Precision::Tf32, true),
            (Precision::Fp32, false),
        ] {
            prepare(precision);
            assert_eq!(tf32_allowed(), Some(tf32), "{precision:?}");
        }
    }
}
