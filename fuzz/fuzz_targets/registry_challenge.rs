#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dockplug_fuzz::registry_challenge(data));
