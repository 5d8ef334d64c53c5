//! cptc's libtorch half: the built-in engine ([`backend`]) and the worker that runs train and
//! eval stages for the `cptc` executor ([`worker`]; its protocol is `cptc::stages::worker`).
//!
//! Nothing else in cptc links tch: the `cptc` binary starts this crate's `cptc-torch` binary
//! when a stage needs libtorch, so plans, checks and cached runs never load it.

pub mod backend;
pub mod stages;
pub mod worker;

use cptc::stages::DeviceClass;

/// The libtorch device of a device class (the first CUDA device for `cuda`).
pub fn device(class: DeviceClass) -> tch::Device {
    match class {
        DeviceClass::Cpu => tch::Device::Cpu,
        DeviceClass::Cuda => tch::Device::Cuda(0),
    }
}
