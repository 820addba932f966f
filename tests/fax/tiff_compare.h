/* stub */
#ifndef CM_tiff_compare_H
#define CM_tiff_compare_H
int tiff_compare_stub(void);
#endif
