//! The editor: each input is edited to a shorter and to a longer search path.
//! The result must be an error, or an image that passes `check_layout` and
//! re-reads with the new search path and unchanged NEEDED/SONAME/interpreter.
#![no_main]
use libfuzzer_sys::fuzz_target;
use unfarm::edit::{self, EditRequest, SearchPathTag};

/// Images the editor may produce that are not worth materialising here: an
/// executable whose program headers move may need a zero gap up to 64 MiB
/// (see `edit::grow::place`), and under ASan many such images exhaust the
/// fuzzer's memory limit.
const MAX_NEW_LEN: u64 = 8 << 20;

fn try_edit(data: &[u8], tag: SearchPathTag, new_value: &str, scrub: &[&[u8]]) {
    let Ok(before) = unfarm::elf::parse_facts(data) else {
        return;
    };
    let req = EditRequest {
        tag,
        new_value,
        scrub,
        drop_ldcache_note: true,
    };
    let Ok(e) = edit::plan_edit(data, data.len() as u64, &req) else {
        return;
    };
    if e.new_len > MAX_NEW_LEN {
        return;
    }
    let mut out = data.to_vec();
    edit::apply_in_memory(&mut out, &e);
    if let Err(err) = edit::check_layout(&out) {
        // `fix` checks the layout of every edited image and refuses the file
        // when it fails: an input that was already broken may stay broken
        // (that is the "error" outcome). A valid input must stay valid.
        if edit::check_layout(data).is_ok() {
            panic!("edited image of a valid input fails check_layout: {err}");
        }
        return;
    }
    let after = unfarm::elf::parse_facts(&out[..]).expect("edited image re-reads");
    let want = (!new_value.is_empty()).then(|| new_value.to_string());
    match tag {
        SearchPathTag::Runpath => assert_eq!(after.runpath, want, "new RUNPATH"),
        SearchPathTag::Rpath => assert_eq!(after.rpath, want, "new RPATH"),
    }
    assert_eq!(after.needed, before.needed, "NEEDED changed");
    assert_eq!(after.soname, before.soname, "SONAME changed");
    assert_eq!(after.interpreter, before.interpreter, "interpreter changed");
    assert_eq!(after.ident, before.ident, "ident changed");
    for n in scrub {
        assert!(
            memchr_find(&out, n).is_none() || memchr_find(new_value.as_bytes(), n).is_some(),
            "scrubbed string survives"
        );
    }
}

fn memchr_find(hay: &[u8], n: &[u8]) -> Option<usize> {
    if n.is_empty() {
        return None;
    }
    hay.windows(n.len()).position(|w| w == n)
}

fuzz_target!(|data: &[u8]| {
    let Ok(f) = unfarm::elf::parse_facts(data) else {
        return;
    };
    let (tag, lists) = edit::fuzz_lists(&f);
    for list in &lists {
        try_edit(data, tag, list, &[]);
    }
});
