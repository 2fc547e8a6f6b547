/* xxHash 0.8.x (native/xxhash/xxhash.h, BSD 2-Clause, from the python-xxhash sdist
 * the applier already depends on), compiled inline into the scanner: the same XXH3_64bits
 * that xxhash.xxh3_64_intdigest computes, without a Python call per key. */
#define XXH_INLINE_ALL
#include "xxhash.h"
