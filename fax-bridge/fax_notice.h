/* stub */
#ifndef CM_fax_notice_H
#define CM_fax_notice_H
int fax_notice_stub(void);
#endif
