"""C kernels for the CPU, compiled with the system C compiler at first use (see `build`)."""
