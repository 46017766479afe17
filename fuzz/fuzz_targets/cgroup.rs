//! Container identity from `/proc/PID/cgroup`: total on any text (the file is written by the
//! kernel, but its paths are named by whoever creates cgroups, containers included).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sensor_agent::capture::container::identify(&String::from_utf8_lossy(data));
});
