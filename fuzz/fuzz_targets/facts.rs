//! ELF facts reading: any bytes give facts or a one-line error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match unfarm::elf::parse_facts(data) {
        Ok(f) => {
            // Touch everything the rest of unfarm reads.
            let _ = f.ident.machine_name();
            let _ = unfarm::elf::glibc_loader_soname(&f.ident);
            let _ = unfarm::plan::needs::collect(&f, &[], &[]);
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e:?}"),
    }
    let _ = unfarm::edit::check_layout(data);
});
