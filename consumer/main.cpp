#include "consumer.hpp"

#include <malloc.h>

int main(int argc, char* argv[]) {
    // A take of the pipe is a buffer of up to 1 MiB, handed on with its
    // orders and freed once they are served. glibc would map each one
    // afresh (and trim the heap under it), so that every take paid a page
    // fault per 4 KiB; kept in the heap, the next take reuses the pages:
    // --sync ingest 10 to 17% faster (docs/benchmarks.md). The peak memory
    // is the same; the heap keeps it.
    (void)::mallopt(M_MMAP_THRESHOLD, 4 << 20);
    (void)::mallopt(M_TRIM_THRESHOLD, 64 << 20);
    return coffee::program_main<coffee::consumer::options>("coffee-consumer", argc, argv,
                                                            coffee::consumer::parse_command_line,
                                                            coffee::consumer::run);
}
