//! The profile reader against hostile input.
//!
//! * A mutation fuzzer (deterministic, bounded: `HEAPPROF_FUZZ_ITERATIONS`,
//!   default 12,000) flips, overwrites, truncates, inserts, deletes and
//!   duplicates bytes of real profiles, raw and re-gzipped (so that the
//!   protobuf layer is reached through valid gzip), and decodes each result:
//!   an error is fine, a panic is not. A panicking input is saved to
//!   `target/tmp` for the regression corpus `tests/data/fuzz/`.
//! * Every file of that corpus is decoded on each run: `valid-*` files must
//!   decode, every other one must give an error of one line.
//! * Hand-made malformed profiles give specific errors.

mod common;
#[path = "common/mutate.rs"]
mod mutate;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use heapprof::pprof::proto;
use heapprof::pprof::Profile;
use mutate::{gunzip, gzip, mutate, Rng};
use prost::Message;

#[global_allocator]
static ALLOC: heapprof::Profiler = heapprof::Profiler::system();

/// Decodes `bytes`; on a panic, saves the input and fails.
fn decode_must_not_panic(bytes: &[u8], what: &str) -> Result<Profile, heapprof::pprof::Error> {
    match catch_unwind(AssertUnwindSafe(|| Profile::decode(bytes))) {
        Ok(result) => result,
        Err(_) => {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!(
                "crash-{:016x}",
                bytes
                    .iter()
                    .fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64)
                        .wrapping_mul(0x100000001b3))
            ));
            std::fs::write(&path, bytes).unwrap();
            panic!(
                "decoding {what} panicked; input saved to {} (add it to tests/data/fuzz/)",
                path.display()
            );
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let synthetic =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("cli/tests/data/synthetic.pb.gz"))
            .unwrap();
    heapprof::set_sample_rate(1);
    let kept: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; 100 + i]).collect();
    let ours = heapprof::heap_profile().unwrap();
    heapprof::set_sample_rate(heapprof::DEFAULT_RATE as usize);
    drop(kept);
    vec![gunzip(&synthetic), gunzip(&ours)]
}

#[test]
fn mutated_profiles_never_panic_the_reader() {
    let iterations: usize = std::env::var("HEAPPROF_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12_000);
    let seeds = seeds();
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    let (mut accepted, mut rejected) = (0, 0);
    for n in 0..iterations {
        let seed = &seeds[n % seeds.len()];
        let raw = mutate(&mut rng, seed);
        // Alternate: raw bytes; valid gzip around mutated protobuf; and
        // mutated gzip (damaged headers, checksums, deflate streams).
        let input = match n % 3 {
            0 => raw,
            1 => gzip(&raw),
            _ => mutate(&mut rng, &gzip(seed)),
        };
        if decode_must_not_panic(&input, &format!("mutation {n}")).is_ok() {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    // Both outcomes must occur, or the mutations are not reaching the parser.
    assert!(
        accepted > iterations / 100 && rejected > iterations / 10,
        "{accepted} accepted, {rejected} rejected"
    );
    println!("{iterations} mutations: {accepted} decoded, {rejected} rejected, no panic");
}

/// At least this many files of each kind are in `tests/data/fuzz/`, so that
/// an emptied or misplaced corpus fails rather than passes with nothing
/// checked.
const MIN_MALFORMED: usize = 38;
const MIN_VALID: usize = 8;

#[test]
fn the_regression_corpus_decodes_as_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let (mut valid, mut malformed) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "README.md" || name == "generate.py" {
            continue;
        }
        let decoded = decode_must_not_panic(&std::fs::read(&path).unwrap(), &name);
        if name.starts_with("valid-") {
            if let Err(err) = decoded {
                panic!("{name}: named valid- but does not decode: {err}");
            }
            valid += 1;
            continue;
        }
        let err = match decoded {
            Ok(_) => panic!("{name}: malformed, but decodes (name it valid- if it is)"),
            Err(err) => err.to_string(),
        };
        assert!(
            !err.is_empty() && !err.contains(['\n', '\r']),
            "{name}: the error is not one line: {err:?}"
        );
        println!("{name}: {err}");
        malformed += 1;
    }
    assert!(
        valid >= MIN_VALID && malformed >= MIN_MALFORMED,
        "{} holds {valid} valid and {malformed} malformed inputs; expected at least {MIN_VALID} and {MIN_MALFORMED}",
        dir.display()
    );
}

/// Breaks a valid profile in one specific way.
type Breaker = Box<dyn Fn(&mut proto::Profile)>;

/// A small valid profile to break in specific ways.
fn valid() -> proto::Profile {
    proto::Profile {
        sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }],
        sample: vec![proto::Sample {
            location_id: vec![1],
            value: vec![10],
            label: vec![],
        }],
        location: vec![proto::Location {
            id: 1,
            mapping_id: 1,
            line: vec![proto::Line {
                function_id: 1,
                line: 3,
                column: 0,
            }],
            ..Default::default()
        }],
        function: vec![proto::Function {
            id: 1,
            name: 3,
            ..Default::default()
        }],
        mapping: vec![proto::Mapping {
            id: 1,
            ..Default::default()
        }],
        string_table: ["", "space", "bytes", "main"]
            .map(|s| s.as_bytes().to_vec())
            .to_vec(),
        ..Default::default()
    }
}

fn error_of(p: proto::Profile) -> String {
    Profile::decode(&p.encode_to_vec()).unwrap_err().to_string()
}

#[test]
fn malformed_profiles_get_specific_errors() {
    assert!(Profile::decode(&valid().encode_to_vec()).is_ok());
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "sample refers to location 7 does not exist",
            Box::new(|p| p.sample[0].location_id = vec![7]),
        ),
        (
            "line refers to function 9 does not exist",
            Box::new(|p| p.location[0].line[0].function_id = 9),
        ),
        (
            "location refers to mapping 5 does not exist",
            Box::new(|p| p.location[0].mapping_id = 5),
        ),
        ("location has id 0", Box::new(|p| p.location[0].id = 0)),
        (
            "function id 1 is used twice",
            Box::new(|p| p.function.push(p.function[0])),
        ),
        (
            "function name names string 99",
            Box::new(|p| p.function[0].name = 99),
        ),
        ("names string -1", Box::new(|p| p.sample_type[0].unit = -1)),
        (
            "a sample has 3 values but the profile has 1 sample types",
            Box::new(|p| p.sample[0].value = vec![1, 2, 3]),
        ),
        (
            "string_table[0] must be empty",
            Box::new(|p| p.string_table[0] = "x".into()),
        ),
        (
            "location id 1 is used twice",
            Box::new(|p| p.location.push(p.location[0].clone())),
        ),
        (
            "the space values add up to more than 2^62",
            Box::new(|p| {
                let sample = p.sample[0].clone();
                p.sample = vec![sample; 3];
                for s in &mut p.sample {
                    s.value = vec![i64::MIN];
                }
            }),
        ),
    ];
    for (expected, break_it) in cases {
        let mut p = valid();
        break_it(&mut p);
        let err = error_of(p);
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    }
    // A cycle of ids (a stack that revisits the same locations, as
    // recursion does) is valid: it decodes, every reference resolved.
    let mut cycle = valid();
    let mut second = cycle.location[0].clone();
    second.id = 2;
    cycle.location.push(second);
    cycle.sample[0].location_id = [1, 2].repeat(500);
    let decoded = Profile::decode(&cycle.encode_to_vec()).unwrap();
    assert_eq!(decoded.samples[0].locations.len(), 1000);
    assert!(decoded.samples[0].locations.iter().all(|&l| l < 2));

    // Huge counts: a packed field that claims far more bytes than exist,
    // and ids far apart (a sparse table, not a huge dense one).
    let mut raw = valid().encode_to_vec();
    raw.extend_from_slice(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]); // sample, length 4 GiB
    assert!(Profile::decode(&raw)
        .unwrap_err()
        .to_string()
        .contains("not a pprof profile"));
    let mut sparse = valid();
    sparse.location[0].id = u64::MAX;
    sparse.sample[0].location_id = vec![u64::MAX];
    assert!(Profile::decode(&sparse.encode_to_vec()).is_ok());
}
