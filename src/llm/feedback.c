/* feedback.c — §13 step 9, after the line is written: what the user's
 * message says about the previous answer becomes persona feedback for
 * that answer's exchange, then the exchange is flushed (unde-persona
 * resolves conflicts and applies the deltas within its caps).
 *
 * The signals, by the message's words (lower case, lib/stem.h):
 *   laughter (хаха, ахах, lol, 😂)             humor_positive
 *   "не смешно", "not funny"                   humor_rejected
 *   "короче", "покороче", "shorter", "tl;dr"   brevity_requested
 *   "подробнее", "more detail"                 detail_requested
 *   "на ты", "без официоза"                    casual_requested
 *   "на вы", "официальнее"                     formality_requested
 *   after an answer that recalled episodes:
 *     "откуда ты знаешь", "не напоминай"       memory_callback_rejected
 *     "точно", "помнишь", "да, было"           memory_callback_positive
 * A persona that fails or is not configured never fails the turn. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "llm.h"
#include "log.h"
#include "svc.h"
#include "util.h"

static int any(const char *low, const char *const *phrases)
{
	for (int i = 0; phrases[i]; i++)
		if (strstr(low, phrases[i]))
			return 1;
	return 0;
}

json_t *feedback_signals(const char *message, int prev_used_memory)
{
	static const char *const laugh[] = { "хаха", "ахах", "хах", "lol", "haha", "😂", "🤣", NULL };
	static const char *const unfunny[] = { "не смешно", "not funny", NULL };
	static const char *const brief[] = { "короче", "покороче", "слишком длинно", "shorter",
					     "tl;dr", "too long", NULL };
	static const char *const detail[] = { "подробнее", "расскажи больше", "more detail", NULL };
	static const char *const casual[] = { "на ты", "без официоза", NULL };
	static const char *const formal[] = { "на вы", "официальнее", NULL };
	static const char *const mem_no[] = { "откуда ты знаешь", "не напоминай", "how do you know",
					      NULL };
	static const char *const mem_yes[] = { "точно", "помнишь", "да, было", "you remember", NULL };
	char *low = llm_lower(message);
	json_t *s = json_array();
	if (any(low, unfunny))
		json_array_append_new(s, json_string("humor_rejected"));
	else if (any(low, laugh))
		json_array_append_new(s, json_string("humor_positive"));
	if (any(low, brief))
		json_array_append_new(s, json_string("brevity_requested"));
	else if (any(low, detail))
		json_array_append_new(s, json_string("detail_requested"));
	if (any(low, casual))
		json_array_append_new(s, json_string("casual_requested"));
	else if (any(low, formal))
		json_array_append_new(s, json_string("formality_requested"));
	if (prev_used_memory && any(low, mem_no))
		json_array_append_new(s, json_string("memory_callback_rejected"));
	else if (prev_used_memory && any(low, mem_yes))
		json_array_append_new(s, json_string("memory_callback_positive"));
	free(low);
	return s;
}

void feedback_send(const char *user_id, const char *exchange_id, const char *message_id,
		   const json_t *signals, struct deadline dl)
{
	const char *url = conf_str("PERSONA_AGENT_URL", NULL);
	if (!url || !*url || !exchange_id || !*exchange_id || !json_array_size(signals))
		return;
	size_t i;
	const json_t *sig;
	int sent = 0;
	json_array_foreach(signals, i, sig)
	{
		char sid[37];
		util_uuid4(sid);
		json_t *body = json_pack("{s:s, s:s, s:s, s:O, s:{s:s, s:s?}}", "user_id", user_id,
					 "signal_id", sid, "exchange_id", exchange_id, "signal_type", sig,
					 "signal_data", "source", "unde-llm", "message_id", message_id);
		struct svc_answer a;
		if (svc_call("persona-agent", "/persona/feedback", body, dl, &a) == 0)
			sent++;
		else
			log_event(LOG_WARN, "persona feedback failed",
				  json_pack("{s:O, s:s}", "signal_type", sig, "code", a.code));
		svc_answer_free(&a);
		json_decref(body);
	}
	json_t *body = json_pack("{s:s, s:s}", "user_id", user_id, "exchange_id", exchange_id);
	struct svc_answer a;
	if (svc_call("persona-agent", "/persona/flush", body, dl, &a) != 0)
		log_event(LOG_WARN, "persona flush failed", json_pack("{s:s}", "code", a.code));
	else
		log_event(LOG_INFO, "persona feedback sent",
			  json_pack("{s:s, s:i, s:O}", "exchange_id", exchange_id, "signals", sent,
				    "applied", json_object_get(a.answer, "applied")));
	svc_answer_free(&a);
	json_decref(body);
}
