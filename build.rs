//! Link-time settings that let the binary find libtorch and use CUDA without any environment
//! variable at run time (see `../shared/docs/gpu.md`).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // torch-sys (our direct dependency, `links = "tch"`) tells us where libtorch's libraries are.
    let Ok(lib_dir) = env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report libtorch's library directory; set LD_LIBRARY_PATH at run time");
        return;
    };
    let lib_dir = PathBuf::from(lib_dir);
    // An rpath, so that the binary finds libtorch where it was built against.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    // The linker's --as-needed drops libtorch_cuda.so because no symbol of it is referenced
    // directly; without it CUDA is silently unavailable. Force it in when the build has it.
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
