/*
 * Planted bugs, for the torture suite only: off unless a test switches one
 * on (pyh2._core.set_planted_bug), to prove the crash engine and the model
 * checks notice a broken flush.  Never set in normal use.
 */
#ifndef HAMMER2_DEBUG_H
#define HAMMER2_DEBUG_H

#define HAMMER2_BUG_NOBARRIER	0x01	/* no barrier before the volume header */
#define HAMMER2_BUG_DROPWRITE	0x02	/* some data block writes are not issued */

extern int hammer2_planted_bug;

#endif
