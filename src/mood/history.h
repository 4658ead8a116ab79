/* history.h — the previous mood_frame from the user's shard (spec §11:
 * "предыдущее состояние", kept in chat history instead of Redis): the
 * mood_frame of the user's last saved message that has one, or the one
 * named by previous_mood_frame_id. Uses lib/shardc's routing. */
#ifndef UNDE_MOOD_HISTORY_H
#define UNDE_MOOD_HISTORY_H

#include <jansson.h>

#include "shardc.h"

/* Is a shard configured (PRODUCTION_DB_URL's routing table or
 * SHARD_0_DB_URL), and not switched off with MOOD_HISTORY=0? */
int mood_history_enabled(void);

/* The frame (new reference), or NULL: *why is "unknown_user", "none"
 * (nothing saved with a frame) or the shard's error code. */
json_t *mood_history_last(struct shard_ctx *x, const char *user_id, const char *frame_id,
			  const char **why);

#endif
