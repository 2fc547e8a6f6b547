"""Not part of the applier: throwaway local servers, workloads, the demo and the benchmark."""
