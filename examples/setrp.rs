// Scratch tool for manual inspection (not part of the product).
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&a[1]).unwrap();
    let req = unfarm::edit::EditRequest {
        tag: unfarm::edit::SearchPathTag::Runpath,
        new_value: &a[2],
        scrub: &[],
        drop_ldcache_note: false,
    };
    let e = unfarm::edit::plan_edit(&data[..], data.len() as u64, &req).unwrap();
    let mut d = data.clone();
    unfarm::edit::apply_in_memory(&mut d, &e);
    std::fs::write(&a[1], d).unwrap();
}
