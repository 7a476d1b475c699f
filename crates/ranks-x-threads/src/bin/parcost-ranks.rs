//! A rank of the suite's MPI jobs, for this crate's tests; the bench runs itself as its ranks.

fn main() {
    ranks_x_threads::rank::serve_if_rank();
    eprintln!("parcost-ranks: run by mpirun as `parcost-ranks --parcost-rank`");
    std::process::exit(2);
}
