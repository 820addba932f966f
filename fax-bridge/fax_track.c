/* stub */
#include "autoconfig.h"
#include "fax_track.h"
int fax_track_stub(void) { return 0; }
