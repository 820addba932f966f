/* stub */
#ifndef CM_fax_track_H
#define CM_fax_track_H
int fax_track_stub(void);
#endif
