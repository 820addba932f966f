/* stub */
#include "autoconfig.h"
#include "t30_loop.h"
int t30_loop_stub(void) { return 0; }
