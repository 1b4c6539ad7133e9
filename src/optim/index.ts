// The optimizers package: SGD, Adam, AdamW, gradient clipping and learning-rate schedules.

export { Optimizer, type BaseHyperparameters, type OptimizerStateDict, type ParamGroup, type ParamGroupInput, type ParamState, type ParamUpdate } from './optimizer.js';
export { SGD, type SGDOptions, type SGDState } from './sgd.js';
export { Adam, type AdamOptions, type AdamState } from './adam.js';
export { AdamW } from './adamw.js';
export { clipGradNorm, clipGradValue } from './clip.js';
export { cosineSchedule, linearSchedule, constantSchedule, setLr, type Schedule, type WarmupOptions, type DecayOptions } from './schedule.js';
