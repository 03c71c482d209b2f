/*
 * tf_stack_guard.h - an MPU region below the stack that nothing may access, so a stack
 * overflow faults at its first access instead of going on unnoticed (layout: sections.ld).
 */
#ifndef TF_STACK_GUARD_H
#define TF_STACK_GUARD_H

/* Program the guard region and enable the MPU and the MemManage fault. Called by the reset
 * handler before main, so the guard is up before anything deep runs. */
void tf_stack_guard_init(void);

#endif /* TF_STACK_GUARD_H */
