// Package bench is dockerfuse's benchmark, run by `make bench`: it starts a
// target container of its own (internal/testenv, name prefix dfbench-),
// mounts it with bin/dockerfuse and prints one table that puts each
// workload's dockerfuse figure beside, measured in the same run, the same
// work done through `docker exec` (the transport), `docker cp` where it
// applies, and the native path /proc/PID/root, with the ratios and a
// PASS/FAIL for each target of issue #4.
//
// The benchmark lives in TestBench, which skips unless DOCKERFUSE_BENCH=1,
// so that `go test ./...` never runs it. Each figure is the median of
// DOCKERFUSE_BENCH_RUNS runs (default 5) after one warm-up run; the methods
// take turns within each run, so that noise from other work on the machine
// spreads over all of them. "Cold" means a fresh mount and, for every
// method, the host's page, dentry and inode caches dropped
// (/proc/sys/vm/drop_caches) first; "warm" means the same work again at
// once, nothing changed. The benchmark needs root, /dev/fuse and an engine.
package bench
