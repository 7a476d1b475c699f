//! The verdict: what to set on this machine, computed from the summary.
