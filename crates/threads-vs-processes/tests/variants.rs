//! Every variant gives the serial result, bit for bit, with real worker processes.

use std::path::Path;

use parcost::workload::{ArrayJob, BLOCK, Tolerance};
use threads_vs_processes::{Runner, Variant, output_len};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_parcost-worker-tvp"))
}

#[test]
fn every_variant_matches_serial_and_a_wrong_one_is_caught() {
    let elements = 5 * BLOCK + 77;
    let mut input = vec![0.0; elements];
    ArrayJob::Fill.run_blocks(1, 0, &[], &mut input);
    for job in ArrayJob::ALL {
        let len = output_len(job, elements);
        let mut reference = vec![0.0; len];
        let mut serial =
            Runner::new(Variant::Serial, 1, job, 7, elements, &input, exe()).expect("serial");
        serial.run(&input, &mut reference).expect("run");
        for variant in Variant::PARALLEL {
            for workers in [1, 2, 3] {
                let mut r =
                    Runner::new(variant, workers, job, 7, elements, &input, exe()).expect("setup");
                let mut out = vec![0.0; len];
                r.run(&input, &mut out).expect("run");
                if let Err(e) = Tolerance::Exact
                    .check(r.output(&out).iter().copied(), reference.iter().copied())
                {
                    panic!("{} {} x{workers}: {e}", job.name(), variant.name());
                }
            }
        }
        let mut wrong = reference.clone();
        wrong[len / 2] = f64::from_bits(wrong[len / 2].to_bits() ^ 1);
        assert!(Tolerance::Exact.check(wrong, reference).is_err());
    }
}

#[test]
fn worker_processes_report_the_cpu_they_spent() {
    let elements = 64 * BLOCK;
    let mut input = vec![0.0; elements];
    ArrayJob::Fill.run_blocks(1, 0, &[], &mut input);
    let len = output_len(ArrayJob::Elementwise, elements);
    for variant in Variant::PARALLEL {
        let mut r = Runner::new(
            variant,
            2,
            ArrayJob::Elementwise,
            7,
            elements,
            &input,
            exe(),
        )
        .expect("setup");
        let before = r.worker_cpu();
        let mut out = vec![0.0; len];
        for _ in 0..5 {
            r.run(&input, &mut out).expect("run");
        }
        match (
            variant.name().starts_with("process"),
            before,
            r.worker_cpu(),
        ) {
            (true, Some(b), Some(a)) => assert!(a > b, "{}: {b:?} -> {a:?}", variant.name()),
            (true, b, a) => panic!("{}: no worker CPU ({b:?}, {a:?})", variant.name()),
            (false, b, a) => assert_eq!((b, a), (None, None), "{}", variant.name()),
        }
    }
}
