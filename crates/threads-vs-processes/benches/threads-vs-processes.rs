//! Cost 3: the same array work on threads and on worker processes.
//!
//! Ids: `threads-vs-processes/<elementwise|fill|sum-squares>/elements=N/variant=V,workers=W`.

use criterion::Throughput;
use parcost::harness::{Suite, distinct, fail, params};
use parcost::workload::{ArrayJob, Tolerance};
use threads_vs_processes::{ELEMENTS, Runner, Variant, output_len};

const SUITE: &str = "threads-vs-processes";
const SEED: u64 = 0x5eed_0003;

fn main() {
    parcost::worker::serve_if_worker();
    let mut suite = Suite::without_blas(SUITE);
    let exe = parcost::worker::current_exe().unwrap_or_else(|e| fail(SUITE, e));
    let p = suite.logical_cores();
    let elements = ELEMENTS;
    let mut input = vec![0.0; elements];
    ArrayJob::Fill.run_blocks(SEED ^ 1, 0, &[], &mut input);
    for job in ArrayJob::ALL {
        let len = output_len(job, elements);
        let setup = |variant, workers| {
            Runner::new(variant, workers, job, SEED, elements, &input, &exe)
                .unwrap_or_else(|e| fail(SUITE, format!("{} x{workers}: {e}", variant.name())))
        };
        // Under `--quick`, W = P and 2P: one worker only adds the cost of being parallel.
        let workers = if suite.is_quick() {
            distinct([p, 2 * p])
        } else {
            distinct([1, p, 2 * p])
        };
        let workload = params(&[("elements", &elements)]);
        let mut cases = vec![(Variant::Serial, 1)];
        for w in workers.iter().copied() {
            cases.extend(Variant::PARALLEL.map(|v| (v, w)));
        }
        let id = |variant: Variant, workers: usize| {
            let cell = params(&[("variant", &variant.name()), ("workers", &workers)]);
            format!("{workload}/{cell}")
        };
        // A job none of whose cases runs here (a later round's contenders) costs nothing:
        // no reference, no workers started.
        if !cases
            .iter()
            .any(|&(v, w)| suite.runs(&format!("{}/{}", job.name(), id(v, w))))
        {
            continue;
        }
        let mut reference = vec![0.0; len];
        setup(Variant::Serial, 1)
            .run(&input, &mut reference)
            .unwrap_or_else(|e| fail(SUITE, e));
        let mut group = suite.group(job.name());
        group.throughput(Throughput::Elements(elements as u64));
        for (variant, workers) in cases {
            let id = id(variant, workers);
            if !group.runs(&id) {
                continue;
            }
            group.bench_with_workers(
                &id,
                (setup(variant, workers), vec![0.0; len]),
                |(runner, out)| runner.run(&input, out).unwrap_or_else(|e| fail(SUITE, e)),
                |(runner, out)| {
                    Tolerance::Exact.check(
                        runner.output(out).iter().copied(),
                        reference.iter().copied(),
                    )
                },
                |(runner, _)| runner.worker_cpu(),
            );
        }
        group.finish();
    }
    suite.finish();
}
