//! A worker process for this crate's tests; the bench re-executes itself instead.

fn main() {
    parcost::worker::serve_if_worker();
    eprintln!("parcost-worker-tvp: run by the tests as `parcost-worker-tvp --parcost-worker`");
    std::process::exit(2);
}
