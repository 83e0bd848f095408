//! The baseline of the overhead bench: the workloads with the system
//! allocator installed directly, as in a program without heapprof. Run by
//! `benches/overhead.rs`; on its own it only says so.

#[path = "overhead_common/mod.rs"]
mod common;

fn main() {
    if !common::run_as_child(|_| Box::new(())) {
        println!(
            "overhead_system: a helper of the overhead bench; run cargo bench --workspace --bench 'overhead*'"
        );
    }
}
