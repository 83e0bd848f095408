//! A program built with frame pointers: heapprof must walk them and get
//! the same call chain the code has.

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

#[inline(never)]
fn leaf_site(into: &mut Vec<Vec<u8>>) {
    for i in 0..64 {
        into.push(vec![i as u8; 4096]);
    }
}

#[inline(never)]
fn level_c(into: &mut Vec<Vec<u8>>) {
    leaf_site(into);
    std::hint::black_box(into.len());
}

#[inline(never)]
fn level_b(into: &mut Vec<Vec<u8>>) {
    level_c(into);
    std::hint::black_box(into.len());
}

#[inline(never)]
fn level_a(into: &mut Vec<Vec<u8>>) {
    level_b(into);
    std::hint::black_box(into.len());
}

fn main() {
    heapprof::set_sample_rate(1);
    let out = std::env::args().nth(1).expect("output path");
    let mut kept = Vec::with_capacity(64);
    level_a(&mut kept);
    heapprof::write_heap_profile(&out).expect("write profile");
}
