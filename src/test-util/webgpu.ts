// Where the tests find software Vulkan for WebGPU: the lavapipe that scripts/setup-lavapipe.sh fetched into .lavapipe/.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where scripts/setup-lavapipe.sh puts the driver's ICD file. */
export const LAVAPIPE_ICD = fileURLToPath(new URL('../../.lavapipe/lvp_icd.json', import.meta.url));

/** The ICD file of the repository's lavapipe; throws (never skips) when it was not fetched. */
export function lavapipeIcd(): string {
  const icd = LAVAPIPE_ICD;
  if (!existsSync(icd)) throw new Error(`no software Vulkan driver at ${icd}: run \`sh scripts/setup-lavapipe.sh .lavapipe\` (as root: it apt-installs mesa-vulkan-drivers)`);
  return icd;
}
