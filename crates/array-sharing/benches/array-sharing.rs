//! Cost 5: moving an array of B bytes to another process (which reads all of it and answers
//! its sum), every transport, against threads and a plain memcpy.
//!
//! Ids: `array-sharing/sum/transport=T,pool=persistent|spawn,access=read|read-write/bytes=B`
//! and `array-sharing/copy/transport=memcpy/bytes=B`.

use array_sharing::{Access, SIZES, cases, memcpy};
use criterion::Throughput;
use parcost::harness::{Suite, fail, params};
use parcost::transport::{self, Transport};
use parcost::workload::{Tolerance, fill_uniform, sum};

const SUITE: &str = "array-sharing";
const SEED: u64 = 0x5eed_0005;

struct Moved {
    transport: Box<dyn Transport>,
    sum: f64,
}

fn main() {
    parcost::worker::serve_if_worker();
    let mut suite = Suite::without_blas(SUITE);
    let exe = parcost::worker::current_exe().unwrap_or_else(|e| fail(SUITE, e));
    for bytes in SIZES {
        if bytes > 64 << 20 && suite.is_quick() {
            suite.skip(
                &format!("bytes={bytes}"),
                "the largest size runs in full mode only",
            );
            continue;
        }
        let mut data = vec![0.0; bytes / 8];
        fill_uniform(&mut data, SEED);
        let size = params(&[("bytes", &bytes)]);

        let mut group = suite.group("copy");
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench(
            &format!("{}/{size}", params(&[("transport", &"memcpy")])),
            vec![0.0; data.len()],
            |dst| memcpy(dst, &data),
            |dst| Tolerance::Exact.check(dst.iter().copied(), data.iter().copied()),
        );
        group.finish();

        let mut group = suite.group("sum");
        group.throughput(Throughput::Bytes(bytes as u64));
        for case in cases(bytes) {
            let id = params(&[
                ("transport", &case.kind),
                ("pool", &case.shape.name()),
                ("access", &case.access.name()),
            ]);
            let opened = transport::open(case.kind, case.shape, &exe, &data)
                .unwrap_or_else(|e| fail(SUITE, format!("{id}: {e}")));
            let moved = Moved {
                transport: opened,
                sum: f64::NAN,
            };
            let write = case.access == Access::ReadWrite;
            group.bench(
                &format!("{id}/{size}"),
                moved,
                |m| {
                    let result = if write {
                        m.transport.exchange_write()
                    } else {
                        m.transport.exchange()
                    };
                    m.sum = result.unwrap_or_else(|e| fail(SUITE, e));
                },
                |m| {
                    // One run has happened: read-only sides must see the data, read-write
                    // ones must have added 1 to every element, visible here.
                    let expected: Vec<f64> = if write {
                        data.iter().map(|x| x + 1.0).collect()
                    } else {
                        data.clone()
                    };
                    Tolerance::Exact.check(
                        m.transport.array().iter().copied(),
                        expected.iter().copied(),
                    )?;
                    Tolerance::Exact.check([m.sum], [sum(&expected)])
                },
            );
        }
        group.finish();
    }
    suite.finish();
}
