/* `make size` compiles this for the target: its .bss is the device's state (bp_device) and the full-spec buffer. */
#include "bp_device.h"

bp_device bp_budget_device;
uint8_t bp_budget_buffer[BP_FULL_BUFFER];
