//! Resolver + planner on fuzzed worlds: the bytes decode into a store with
//! outputs, farms, stubs and an object (`tests/world/mod.rs`, shared with the
//! property tests), and every plan must keep the planner's invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/world/mod.rs"]
mod world;

fuzz_target!(|data: &[u8]| {
    let w = world::decode(data);
    world::check(&w);
});
