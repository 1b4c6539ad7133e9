// The recipes `attend train <name>` runs, one per chapter of the book.

import { g2pRecipe } from './g2p.js';
import { gptBrownRecipe } from './gpt-brown.js';
import { instructRecipe } from './instruct.js';
import { mlmBrownRecipe } from './mlm-brown.js';
import { paradigmsRecipe } from './paradigms.js';
import type { Recipe, RecipeOptions } from './recipe.js';
import { spamRecipe } from './spam.js';
import { spanBrownRecipe } from './span-brown.js';
import { speechDigitsRecipe } from './speech-digits.js';
import { vitFashionRecipe } from './vit-fashion.js';

export const RECIPES: Record<string, Recipe<RecipeOptions>> = {
  g2p: g2pRecipe,
  'gpt-brown': gptBrownRecipe,
  instruct: instructRecipe,
  spam: spamRecipe,
  'mlm-brown': mlmBrownRecipe,
  'span-brown': spanBrownRecipe,
  paradigms: paradigmsRecipe,
  'speech-digits': speechDigitsRecipe,
  'vit-fashion': vitFashionRecipe,
};

/** The recipe called `name`, or an error listing the recipes. */
export function recipe(name: string): Recipe<RecipeOptions> {
  const r = RECIPES[name];
  if (!r) throw new Error(`unknown recipe '${name}'; recipes: ${Object.keys(RECIPES).join(', ') || 'none'}`);
  return r;
}
