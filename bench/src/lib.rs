//! Benchmarks for ocigate. The load benchmark against distribution and nginx is `bench/run.sh`; its method
//! and recorded results are in `bench/README.md`.
