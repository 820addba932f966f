/* stub */
#ifndef CM_fax_backend_H
#define CM_fax_backend_H
int fax_backend_stub(void);
#endif
