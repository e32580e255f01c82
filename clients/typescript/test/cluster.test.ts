import { scenarios, withEnvironment } from './scenarios.js';
import { cluster } from './support.js';

withEnvironment('a three-node Redis Cluster', cluster, (get) => scenarios(get));
