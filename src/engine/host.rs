//! Reading figures from the device. Each read waits for the device to finish the work queued
//! before it, so the optimisation loop reads as rarely as it can; every read goes through here
//! and is counted, per thread, so that tests and benchmarks can check how often that is.

use std::cell::Cell;

use tch::{Device, Kind, Tensor};

use crate::error::Result;

thread_local! {
    static READS: Cell<usize> = const { Cell::new(0) };
}

/// The values of `t` (any shape, any device), as float64 on the host.
pub(crate) fn read(t: &Tensor) -> Result<Vec<f64>> {
    READS.with(|r| r.set(r.get() + 1));
    Ok(Vec::<f64>::try_from(
        t.to_kind(Kind::Double).to_device(Device::Cpu).reshape([-1]),
    )?)
}

/// The one value of a one-element tensor `t`, on the host.
pub(crate) fn read_one(t: &Tensor) -> Result<f64> {
    Ok(read(t)?[0])
}

/// Reads from the device made by the engine on the calling thread so far.
pub fn reads_on_this_thread() -> usize {
    READS.with(Cell::get)
}
