// The recipes `attend train <name>` runs, one per chapter of the book.

import type { Recipe, RecipeOptions } from './recipe.js';

export const RECIPES: Record<string, Recipe<RecipeOptions>> = {};

/** The recipe called `name`, or an error listing the recipes. */
export function recipe(name: string): Recipe<RecipeOptions> {
  const r = RECIPES[name];
  if (!r) throw new Error(`unknown recipe '${name}'; recipes: ${Object.keys(RECIPES).join(', ') || 'none'}`);
  return r;
}
