//! A bare worker process for parcost's own tests; the benches re-execute themselves instead.

fn main() {
    parcost::worker::serve_if_worker();
    eprintln!("parcost-worker: run by parcost's tests as `parcost-worker --parcost-worker`");
    std::process::exit(2);
}
