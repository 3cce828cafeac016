// kshark_count opens a trace.dat with libkshark, the library KernelShark
// loads files with, and prints how many entries it loaded on each CPU, one
// "cpu N" line per CPU that has any, then "total N". It exits 1 when
// KernelShark cannot open or load the file. Built and run by
// host/tracedat's tests (libkshark-dev, KernelShark 2.x).
#include <stdio.h>
#include <stdlib.h>
#include <kernelshark/libkshark.h>

#define MAX_CPUS 8192

int main(int argc, char **argv)
{
	struct kshark_context *ctx = NULL;
	struct kshark_entry **rows = NULL;
	static long per_cpu[MAX_CPUS];
	ssize_t n, i;
	int sd;

	if (argc != 2) {
		fprintf(stderr, "usage: kshark_count FILE\n");
		return 2;
	}
	if (!kshark_instance(&ctx)) {
		fprintf(stderr, "kshark_instance failed\n");
		return 1;
	}
	sd = kshark_open(ctx, argv[1]);
	if (sd < 0) {
		fprintf(stderr, "kshark_open %s: %d\n", argv[1], sd);
		return 1;
	}
	n = kshark_load_entries(ctx, sd, &rows);
	if (n < 0) {
		fprintf(stderr, "kshark_load_entries %s: %zd\n", argv[1], n);
		return 1;
	}
	for (i = 0; i < n; i++) {
		int cpu = rows[i]->cpu;
		if (cpu >= 0 && cpu < MAX_CPUS)
			per_cpu[cpu]++;
		free(rows[i]);
	}
	free(rows);
	for (i = 0; i < MAX_CPUS; i++)
		if (per_cpu[i])
			printf("cpu %zd %ld\n", i, per_cpu[i]);
	printf("total %zd\n", n);
	kshark_close_all(ctx);
	kshark_free(ctx);
	return 0;
}
