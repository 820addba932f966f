/* stub */
#ifndef CM_t30_loop_H
#define CM_t30_loop_H
int t30_loop_stub(void);
#endif
