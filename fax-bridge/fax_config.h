/* stub */
#ifndef CM_fax_config_H
#define CM_fax_config_H
int fax_config_stub(void);
#endif
