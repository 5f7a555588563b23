//! Functions of the libraries this process has loaded (libtorch, the CUDA runtime it brings),
//! looked up by name: for what tch does not expose.

use std::ffi::{c_void, CStr};

/// The address of `name` (a C or mangled C++ symbol) among the loaded libraries, if there.
#[cfg(unix)]
pub(crate) fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT only looks the name up among the loaded libraries.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!symbol.is_null()).then_some(symbol)
}

#[cfg(not(unix))]
pub(crate) fn symbol(_name: &CStr) -> Option<*mut c_void> {
    None
}
