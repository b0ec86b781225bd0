//! What DataFusion's SQL planner can name: every default scalar and aggregate function and
//! the expression planners a DataFusion session registers, plus tables (the SQL front end
//! adds its declared sources; expressions in the engine need none), so names resolve and types
//! check exactly as they would in a DataFusion session.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{plan_err, Result, TableReference};
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};

/// A DataFusion `ContextProvider` with the default function registry.
pub struct FunctionProvider {
    tables: HashMap<String, SchemaRef>,
    udfs: HashMap<String, Arc<ScalarUDF>>,
    udafs: HashMap<String, Arc<AggregateUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
    options: ConfigOptions,
}

impl FunctionProvider {
    /// The registry with no tables.
    pub fn new() -> FunctionProvider {
        let mut udfs = HashMap::new();
        let nested = datafusion_functions_nested::all_default_nested_functions();
        for f in datafusion_functions::all_default_functions()
            .into_iter()
            .chain(nested)
        {
            for alias in f.aliases() {
                udfs.insert(alias.clone(), f.clone());
            }
            udfs.insert(f.name().to_string(), f);
        }
        let mut udafs = HashMap::new();
        for f in datafusion_functions_aggregate::all_default_aggregate_functions() {
            for alias in f.aliases() {
                udafs.insert(alias.clone(), f.clone());
            }
            udafs.insert(f.name().to_string(), f);
        }
        // The planners DataFusion's own session registers for operators and special syntax
        // (`||`, `EXTRACT`, `POSITION`, `SUBSTRING ... FROM`, `count(*)`, ...).
        let planners: Vec<Arc<dyn ExprPlanner>> = vec![
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions_nested::planner::NestedFunctionPlanner),
            Arc::new(datafusion_functions_nested::planner::FieldAccessPlanner),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
            Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
        ];
        FunctionProvider {
            tables: HashMap::new(),
            udfs,
            udafs,
            planners,
            options: ConfigOptions::default(),
        }
    }

    /// Makes a table of this schema known under `name`.
    pub fn add_table(&mut self, name: &str, schema: SchemaRef) {
        self.tables.insert(name.to_string(), schema);
    }
}

impl Default for FunctionProvider {
    fn default() -> Self {
        FunctionProvider::new()
    }
}

impl ContextProvider for FunctionProvider {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        match self.tables.get(name.table()) {
            Some(s) => Ok(Arc::new(LogicalTableSource::new(s.clone()))),
            None => plan_err!(
                "unknown source `{}`: declare it with CREATE SOURCE",
                name.table()
            ),
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.udfs.get(name).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.udafs.get(name).cloned()
    }

    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        // Sorted: DataFusion's "did you mean" picks the first of equally close names.
        let mut names: Vec<String> = self.udfs.keys().cloned().collect();
        names.sort();
        names
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.udafs.keys().cloned().collect();
        names.sort();
        names
    }

    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }
}
