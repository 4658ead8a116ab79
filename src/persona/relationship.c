/* relationship.c — RelationshipStyle: how close the avatar speaks, from the
 * stage (STAGE_LIMITS' style) and the formality decision. */
#include "config.h"

#include <stdio.h>

#include "persona.h"

void relationship_style_apply(struct persona_ctx *c)
{
	static const char *const formality[3] = {
		"casual, first-name, contractions welcome",
		"friendly-neutral",
		"formal and courteous, no slang",
	};
	snprintf(c->relationship, sizeof c->relationship, "Stage %d — %s. Register: %s.", c->stage,
		 STAGE_LIMITS[c->stage].style, formality[c->d[D_FORMALITY].value]);
}
