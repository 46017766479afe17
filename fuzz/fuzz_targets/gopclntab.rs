//! Go's function table (`.gopclntab`) as read from an executable on the host: any program may
//! carry any bytes there, so parsing and walking it must be total and bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sensor_agent::capture::gopclntab::Table;

fuzz_target!(|data: &[u8]| {
    if let Ok(table) = Table::parse(data) {
        for f in table.functions() {
            assert!(f.start <= f.end);
        }
    }
});
