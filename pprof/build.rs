//! Generates the pprof protobuf types from `proto/profile.proto` with protox,
//! a pure-Rust proto compiler, so building heapprof never needs `protoc`.

fn main() {
    println!("cargo:rerun-if-changed=proto/profile.proto");
    let descriptors =
        protox::compile(["profile.proto"], ["proto"]).expect("proto/profile.proto must compile");
    prost_build::Config::new()
        .compile_fds(descriptors)
        .expect("prost-build must generate the pprof types");
}
