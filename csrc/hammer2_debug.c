/* The planted-bug switch (see hammer2_debug.h); 0 in normal use. */
#include "hammer2_debug.h"

int hammer2_planted_bug;
