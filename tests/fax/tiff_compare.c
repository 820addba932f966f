/* stub */
#include "autoconfig.h"
#include "tiff_compare.h"
int tiff_compare_stub(void) { return 0; }
